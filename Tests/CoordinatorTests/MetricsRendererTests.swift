import SpecolaProtocol
import Testing
@testable import SpecolaClusterCore
@testable import SpecolaCoordinator
import CooperativePoolWatch

@Suite(.watchesCooperativePool) struct MetricsRendererTests {
    @Test func sensorMetricsUseIPMIExporterNames() {
        let node = Specola_V1_Node.with {
            $0.name = "n1"
            $0.status = "ready"
            $0.facts.bmc.present = true
            $0.facts.bmc.power = .on
            $0.facts.bmc.sensors = [
                .with { $0.recordID = 1; $0.name = "CPU Temp"; $0.type = "Temperature"; $0.hasReading_p = true; $0.reading = 97; $0.state = .critical },
                .with { $0.recordID = 2; $0.name = "FAN1"; $0.type = "Fan"; $0.hasReading_p = true; $0.reading = 3000; $0.state = .nominal },
                .with { $0.recordID = 3; $0.name = "12V"; $0.type = "Voltage"; $0.hasReading_p = true; $0.reading = 12.5; $0.state = .nominal },
            ]
        }
        let text = MetricsRenderer.render(nodes: [node])
        #expect(text.contains(#"ipmi_temperature_celsius{id="1",name="CPU Temp",node="n1"} 97"#))
        #expect(text.contains(#"ipmi_temperature_state{id="1",name="CPU Temp",node="n1"} 2"#))
        #expect(text.contains(#"ipmi_fan_speed_rpm{id="2",name="FAN1",node="n1"} 3000"#))
        #expect(text.contains(#"ipmi_voltage_volts{id="3",name="12V",node="n1"} 12.5"#))
        #expect(text.contains(#"ipmi_chassis_power_state{node="n1"} 1"#))
        #expect(text.contains(#"specola_node_up{node="n1"} 1"#))
    }

    @Test func labelValuesAreEscaped() {
        let node = Specola_V1_Node.with { $0.name = "we\"ird\\" }
        #expect(MetricsRenderer.render(nodes: [node]).contains(#"node="we\"ird\\""#))
    }
}

/// Certificate expiry as a gauge: seconds left, negative once expired.
@Suite(.watchesCooperativePool) struct CertificateExpiryMetricTests {
    @Test func secondsLeftPerCertificate() {
        let text = MetricsRenderer.renderCertificates([
            .init(kind: "ca", path: "/etc/specola/ca.pem", subject: "O=specola,CN=specola-ca", notValidAfterUnixSeconds: 1_000_000),
            .init(kind: "leaf", path: "/etc/specola/c1.pem", subject: "coordinator/c1", notValidAfterUnixSeconds: 999),
        ], nowUnixSeconds: 1_000.5)
        #expect(text.contains("# TYPE specola_certificate_expiry_seconds gauge"))
        #expect(text.contains(#"specola_certificate_expiry_seconds{kind="ca",path="/etc/specola/ca.pem",subject="O=specola,CN=specola-ca"} 998999"#))
        #expect(text.contains(#"specola_certificate_expiry_seconds{kind="leaf",path="/etc/specola/c1.pem",subject="coordinator/c1"} -2"#))
    }
}
