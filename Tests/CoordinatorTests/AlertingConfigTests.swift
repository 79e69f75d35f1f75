import SpecolaAlerting
import SpecolaAlertDelivery
import SpecolaProtocol
import TestSupport
import Testing
@testable import SpecolaClusterCore
@testable import SpecolaCoordinator
import CooperativePoolWatch
import SpecolaDaemon

/// A wrong `alerting:` section stops the coordinator at start-up with the file, line and field.
@Suite(.watchesCooperativePool) struct AlertingConfigTests {
    let base = """
        name: c1
        listen: 127.0.0.1:7450
        tls: {ca: /x/ca.pem, cert: /x/c.pem, key: /x/k.pem}

        """

    func problem(_ alerting: String) -> String {
        do {
            _ = try ConfigFile.decode(CoordinatorConfig.self, yaml: base + alerting, file: "coordinator.yaml")
            return "loaded"
        } catch {
            return "\(error)"
        }
    }

    @Test func mistakesAreReportedWithTheirPlace() {
        let typo = problem("""
            alerting:
              receivers:
                - name: chat
                  webhook: {url: "http://127.0.0.1:9/x", formt: slack}
            """)
        #expect(typo.hasPrefix("coordinator.yaml:7:"), "\(typo)")
        #expect(typo.contains("formt") && typo.contains("unknown field"), "\(typo)")

        let route = problem("""
            alerting:
              receivers:
                - name: chat
                  webhook: {url: "http://127.0.0.1:9/x"}
              routes:
                - receivers: [pager]
            """)
        #expect(route.contains("no such receiver") && route.contains("pager") && route.contains("chat"), "\(route)")

        let password = problem("""
            alerting:
              receivers:
                - name: mail
                  email:
                    from: a@example.org
                    to: [b@example.org]
                    smtp: {host: 127.0.0.1, username: u, passwordFile: /nonexistent/pw}
            """)
        #expect(password.contains("alerting.receivers[0].email.smtp.passwordFile") && password.contains("cannot read"), "\(password)")

        let metric = problem("""
            alerting:
              thresholdRules:
                - {name: Hot, metric: cpu_temp, op: ">", value: 90}
            """)
        #expect(metric.contains("unknown metric 'cpu_temp'") && metric.contains("load1_per_core"), "\(metric)")

        let url = problem("""
            alerting:
              receivers:
                - name: chat
                  webhook: {url: "ftp://example.org/x"}
            """)
        #expect(url.contains("alerting.receivers[0].webhook"), "\(url)")

        let both = problem("""
            alerting:
              receivers:
                - name: chat
            """)
        #expect(both.contains("exactly one of 'webhook' or 'email'"), "\(both)")
    }

    @Test func noSectionMeansAlertsAreKeptButNotSent() throws {
        let config = try ConfigFile.decode(CoordinatorConfig.self, yaml: base, file: "coordinator.yaml")
        #expect(config.alerting.receivers.isEmpty && config.alerting.routing.routes.isEmpty)
        #expect(config.alerting.routing.inhibitRules == [.nodeDownMutesItsAlerts])
    }
}
