/// Definitions of HA workloads for tests: a domain for libvirt's test driver
/// and a kube Pod that runs until it is stopped, on the test image.
public enum HAFixtures {
    public static func domainXML(_ name: String, memoryMiB: Int = 64) -> String {
        """
        <domain type='test'>
          <name>\(name)</name>
          <memory unit='MiB'>\(memoryMiB)</memory>
          <vcpu>1</vcpu>
          <os><type>hvm</type></os>
        </domain>
        """
    }

    /// One container, `main`, that exits 0 on SIGTERM.
    public static func sleeperPod(_ name: String) -> String {
        pod(name, script: "trap 'exit 0' TERM; while true; do sleep 0.2; done")
    }

    /// A pod whose one container records, in `ledger` on the host, when each of its runs started
    /// and when it was last alive (host uptime), like the failover tests' witness job.
    public static func witnessPod(_ name: String, ledger: String) -> String {
        pod(name, script: "f=/ledger/run-`cat /proc/sys/kernel/random/uuid`; cut -d' ' -f1 /proc/uptime > $f.start; while true; do cut -d' ' -f1 /proc/uptime > $f.alive.tmp; mv $f.alive.tmp $f.alive; sleep 0.1; done",
            hostDirectory: ledger)
    }

    /// A kube Pod of one container, `main`, running `script` on the test image; `hostDirectory` is mounted at /ledger.
    static func pod(_ name: String, script: String, hostDirectory: String? = nil) -> String {
        var yaml = """
            apiVersion: v1
            kind: Pod
            metadata:
              name: \(name)
            spec:
              restartPolicy: Never
              containers:
              - name: main
                image: \(TestPodman.image)
                command: ["/bin/sh", "-c", "\(script)"]
                resources: {requests: {cpu: 100m, memory: 32Mi}}

            """
        if let hostDirectory {
            yaml += """
                    volumeMounts:
                    - {name: ledger, mountPath: /ledger}
                  volumes:
                  - name: ledger
                    hostPath: {path: \(hostDirectory), type: Directory}

                """
        }
        return yaml
    }
}
