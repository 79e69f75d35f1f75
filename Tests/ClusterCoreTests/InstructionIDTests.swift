import SpecolaWire
import Testing
import CooperativePoolWatch

/// Instruction ids as agents keep them in their outboxes: each kind reads back as itself.
@Suite(.watchesCooperativePool) struct InstructionIDTests {
    @Test func everyKindReadsBackAsItself() {
        let ids: [InstructionID] = [
            .runTask(allocation: "reduce-m31-0123456789ab"), .stopTask(allocation: "reduce-m31-0123456789ab"),
            .startWorkload(name: "web", generation: 3), .stopWorkload(name: "web", generation: 3),
            .storageAction(number: 17),
        ]
        #expect(ids.map(\.text) == ["reduce-m31-0123456789ab", "stop/reduce-m31-0123456789ab", "wl/web/3", "wl/web/3/stop", "st/17"])
        for id in ids { #expect(InstructionID(parsing: id.text) == id) }
    }

    @Test func eachRunnerRecognisesOnlyItsOwn() {
        #expect(InstructionID.isWorkload("wl/web/3/stop") && !InstructionID.isWorkload("st/1"))
        #expect(InstructionID.isStorageAction("st/1") && !InstructionID.isStorageAction("stop/a-1"))
        #expect(InstructionID.storageActionNumber("st/42") == 42)
        #expect(InstructionID.storageActionNumber("wl/web/1") == 0)
    }
}
