import CooperativePoolWatch
import SpecolaJobs
import Testing

@Test(.watchesCooperativePool) func sizesReadBinaryAndDecimalUnits() {
    #expect(Quantity.bytes("4GiB") == 4 << 30)
    #expect(Quantity.bytes("512MiB") == 512 << 20)
    #expect(Quantity.bytes("1.5Gi") == 3 << 29)
    #expect(Quantity.bytes("100G") == 100_000_000_000)
    #expect(Quantity.bytes("1048576") == 1 << 20)
    for typo in ["4 gigs", "4 GiB", "GiB", "-1GiB", "4GiBs", "1e9", ""] { #expect(Quantity.bytes(typo) == nil, "\(typo)") }
}

@Test(.watchesCooperativePool) func durationsReadSecondsAndUnitsInOrder() {
    #expect(Quantity.seconds("90") == 90)
    #expect(Quantity.seconds("30m") == 1800)
    #expect(Quantity.seconds("1h30m") == 5400)
    #expect(Quantity.seconds("45s") == 45)
    for typo in ["30x", "m", "30m1h", "1h1h", "", "1.5h"] { #expect(Quantity.seconds(typo) == nil, "\(typo)") }
}

@Test(.watchesCooperativePool) func cpuReadsCoresAndMillicores() {
    #expect(Quantity.millicores("2") == 2000)
    #expect(Quantity.millicores("0.5") == 500)
    #expect(Quantity.millicores("250m") == 250)
    #expect(Quantity.millicores("two") == nil)
    #expect(Quantity.formatCores(64000) == "64 cores")
    #expect(Quantity.formatBytes(4 << 30) == "4GiB")
}

@Test(.watchesCooperativePool) func retryDelaysDoubleUpToTheCap() {
    let policy = RetryPolicy(attempts: 4, backoffSeconds: 10, maxBackoffSeconds: 30)
    #expect((1...5).map { policy.delay(beforeRetry: $0) } == [10, 20, 30, 30, nil])
}
