import SpecolaProtocol
import Testing
@testable import SpecolaClusterCore
@testable import SpecolaCoordinator
import CooperativePoolWatch

@Suite(.watchesCooperativePool) struct MetricsRendererTests {
    @Test func sensorMetricsUseIPMIExporterNames() {
        let node = Specola_V1_Node.with {
            $0.name = "n1"
            $0.shownStatus = "ready"
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

    @Test func glusterMetricsUseGlusterPrometheusNames() {
        let node = Specola_V1_Node.with {
            $0.name = "n1"
            $0.facts.gluster.available = true
            $0.facts.gluster.volumes = [.with {
                $0.name = "gv0"
                $0.status = "Started"
                $0.bricks = [
                    .with { $0.host = "h1"; $0.path = "/b/gv0"; $0.local = true; $0.online = true; $0.pid = 42; $0.peerUuid = "u1"
                            $0.healPending = 3; $0.splitBrain = 1; $0.sizeBytes = 1000; $0.freeBytes = 400 },
                    .with { $0.host = "h2"; $0.path = "/b/gv0"; $0.online = false; $0.peerUuid = "u2"; $0.replicaSet = 0 },
                ]
            }]
        }
        let text = MetricsRenderer.render(nodes: [node])
        #expect(text.contains(#"gluster_volume_total_count 1"#), "\(text)")
        #expect(text.contains(#"gluster_brick_up{brick_path="/b/gv0",hostname="h1",peer_id="u1",pid="42",volume="gv0"} 1"#), "\(text)")
        #expect(text.contains(#"gluster_brick_up{brick_path="/b/gv0",hostname="h2",peer_id="u2",pid="0",volume="gv0"} 0"#))
        #expect(text.contains(#"gluster_volume_heal_count{brick_path="/b/gv0",host="h1",volume="gv0"} 3"#))
        #expect(text.contains(#"gluster_volume_split_brain_heal_count{brick_path="/b/gv0",host="h1",volume="gv0"} 1"#))
        #expect(text.contains(#"gluster_brick_capacity_free_bytes{brick_path="/b/gv0",host="h1",subvolume="gv0-replicate-0",volume="gv0"} 400"#))
        #expect(!text.contains(#"gluster_volume_heal_count{brick_path="/b/gv0",host="h2""#), "unknown counts are left out")
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
