import Foundation
import GRPCCore
import SpecolaProtocol
import Testing
@testable import SpecolaCoordinator
import CooperativePoolWatch

/// `Logs` answers in pages: by count, and by size (each task holds up to 128 KiB of output).
@Suite(.watchesCooperativePool) struct LogPageTests {
    let tasks = (0..<40).map { "j/t[\($0)]" }
    var logs: [String: Specola_V1_TaskLog] {
        Dictionary(uniqueKeysWithValues: tasks.map { id in
            (id, Specola_V1_TaskLog.with { $0.allocationID = "a-\(id)"; $0.stdout = String(repeating: "o", count: 64 * 1024); $0.stderr = "e" })
        })
    }

    func pages(pageSize: UInt32) throws -> [Specola_V1_JobLogsResponse] {
        var request = Specola_V1_JobLogsRequest.with { $0.jobID = "j"; $0.pageSize = pageSize }
        var pages: [Specola_V1_JobLogsResponse] = []
        repeat {
            let page = try LogPage(request: request, total: tasks.count).response(tasks: tasks, logs: logs)
            pages.append(page)
            request.pageToken = page.nextPageToken
        } while !request.pageToken.isEmpty
        return pages
    }

    @Test func everyTaskComesExactlyOnceInJobOrder() throws {
        for size: UInt32 in [0, 1, 7, 1_000] {
            let all = try pages(pageSize: size)
            #expect(all.flatMap(\.tasks).map(\.taskID) == tasks)
            #expect(all.allSatisfy { $0.tasks.count <= (size == 0 ? LogPage.defaultSize : Int(size)) })
        }
    }

    @Test func aPageStopsNearOneMiB() throws {
        let all = try pages(pageSize: 1_000)
        #expect(all.count > 1)
        for page in all {
            let bytes = page.tasks.reduce(0) { $0 + $1.stdout.utf8.count + $1.stderr.utf8.count }
            #expect(bytes < LogPage.maxBytes + 64 * 1024 + 2)
        }
    }

    @Test func aForeignTokenIsRefusedByName() {
        let error = #expect(throws: RPCError.self) {
            _ = try LogPage(request: .with { $0.pageToken = "41" }, total: tasks.count)
        }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message == "page token '41' is not from this job's logs; start again without one")
    }
}
