import ArgumentParser
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import SpecolaProtocol

extension ConnectionOptions {
    func withAlerts<T: Sendable>(
        _ body: @escaping @Sendable (Specola_V1_Alerts.Client<HTTP2ClientTransport.Posix>) async throws -> T
    ) async throws -> T {
        try await withClient { try await body(Specola_V1_Alerts.Client(wrapping: $0)) }
    }
}

/// A duration as operators write it: `90s`, `30m`, `2h`, `1d`, `1h30m`.
struct DurationArgument: ExpressibleByArgument, Sendable {
    var milliseconds: Int64

    init?(argument: String) {
        let units: [Character: Int64] = ["s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000]
        var total: Int64 = 0
        var digits = ""
        for character in argument {
            if character.isNumber {
                digits.append(character)
            } else if let unit = units[character], let value = Int64(digits) {
                total += value * unit
                digits = ""
            } else {
                return nil
            }
        }
        guard digits.isEmpty, total > 0 else { return nil }
        milliseconds = total
    }

    static var defaultCompletionKind: CompletionKind { .default }
}

/// `specola alerts`: what fires, and why it is or is not being sent.
struct AlertsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "alerts",
        abstract: "List firing alerts (with --all also resolved ones) and whether each is acked, silenced or inhibited.")
    @OptionGroup var connection: ConnectionOptions
    @Flag(help: "Include resolved alerts.") var all = false

    func run() async throws {
        try await runReporting {
            let request = Specola_V1_ListAlertsRequest.with { $0.all = all }
            let response = try await connection.withAlerts { try await $0.list(request) }
            if connection.json { return try JSONOutput.print(response) }
            guard !response.alerts.isEmpty else {
                print(all ? "no alerts" : "no firing alerts (`specola alerts --all` includes resolved ones)")
                return
            }
            print(Self.render(response.alerts, now: Int64(Date().timeIntervalSince1970 * 1000)))
        }
    }

    static func render(_ alerts: [Specola_V1_AlertView], now: Int64) -> String {
        var table = Table("ID", "RULE", "LABELS", "SEVERITY", "STATE", "SINCE", "MUTED")
        for alert in alerts {
            let labels = alert.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
            let since = alert.state == "resolved" ? alert.endsAtUnixMs : alert.startsAtUnixMs
            var muted = alert.muted.isEmpty ? "-" : "\(alert.muted) \(alert.muteReason)"
            if alert.muted == "acked" { muted += " until \(Format.time(alert.ackedUntilUnixMs))" }
            table.add(
                String(alert.id.prefix(8)), alert.rule, labels.isEmpty ? "-" : labels, alert.severity, alert.state,
                Format.ago(since, now: now), muted)
        }
        return table.rendered
    }
}

/// `specola alert ack ID [--for 2h]`.
struct AlertCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "alert", abstract: "Acknowledge an alert.", subcommands: [Ack.self])

    struct Ack: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Acknowledge a firing alert: its reminders stop until the ack expires or it resolves and fires again.")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "The alert's id, or a unique prefix of it (the ID column of `specola alerts`).") var id: String
        @Option(name: .customLong("for"), help: "How long the ack holds, e.g. 30m, 2h, 1d.") var duration = DurationArgument(argument: "2h")!

        func run() async throws {
            try await runReporting {
                let request = Specola_V1_AckAlertRequest.with { $0.id = id; $0.forMs = duration.milliseconds }
                let alert = try await connection.withAlerts { try await $0.ack(request) }
                if connection.json { return try JSONOutput.print(alert) }
                print("acknowledged \(alert.rule) \(String(alert.id.prefix(8))) until \(Format.time(alert.ackedUntilUnixMs))")
            }
        }
    }
}

/// `specola silence add|list|expire`.
struct SilenceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "silence", abstract: "Mute the alerts that label matchers select, for a while.",
        subcommands: [Add.self, List.self, Expire.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Silence alerts: every --match must match, e.g. --match node=node3 --match alertname=NodeDown.")
        @OptionGroup var connection: ConnectionOptions
        @Option(name: .customLong("match"), help: "A label matcher: name=value, name!=value, name=~regex or name!~regex.")
        var matchers: [String] = []
        @Option(name: .customLong("for"), help: "How long the silence holds, e.g. 30m, 2h, 1d.") var duration: DurationArgument
        @Option(help: "Why, for the others on call.") var comment = ""

        func validate() throws {
            guard !matchers.isEmpty else { throw ValidationError("give at least one --match, e.g. --match node=node3") }
        }

        func run() async throws {
            try await runReporting {
                let request = Specola_V1_AddSilenceRequest.with {
                    $0.matchers = matchers
                    $0.forMs = duration.milliseconds
                    $0.comment = comment
                }
                let silence = try await connection.withAlerts { try await $0.addSilence(request) }
                if connection.json { return try JSONOutput.print(silence) }
                print("silence \(silence.id) active until \(Format.time(silence.endsAtUnixMs))")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List active and pending silences (with --all also expired ones).")
        @OptionGroup var connection: ConnectionOptions
        @Flag(help: "Include expired silences.") var all = false

        func run() async throws {
            try await runReporting {
                let request = Specola_V1_ListSilencesRequest.with { $0.all = all }
                let response = try await connection.withAlerts { try await $0.listSilences(request) }
                if connection.json { return try JSONOutput.print(response) }
                guard !response.silences.isEmpty else { return print("no silences") }
                var table = Table("ID", "MATCHERS", "STATE", "ENDS", "BY", "COMMENT")
                for silence in response.silences {
                    table.add(
                        String(silence.id.prefix(8)), silence.matchers.joined(separator: ","), silence.state,
                        Format.time(silence.endsAtUnixMs), silence.createdBy, silence.comment.isEmpty ? "-" : silence.comment)
                }
                print(table.rendered)
            }
        }
    }

    struct Expire: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "End a silence now.")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "The silence's id, or a unique prefix of it.") var id: String

        func run() async throws {
            try await runReporting {
                let request = Specola_V1_ExpireSilenceRequest.with { $0.id = id }
                let silence = try await connection.withAlerts { try await $0.expireSilence(request) }
                if connection.json { return try JSONOutput.print(silence) }
                print("silence \(silence.id) expired")
            }
        }
    }
}
