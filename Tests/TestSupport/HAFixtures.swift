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
        """
        apiVersion: v1
        kind: Pod
        metadata:
          name: \(name)
        spec:
          restartPolicy: Never
          containers:
          - name: main
            image: \(TestPodman.image)
            command: ["/bin/sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
            resources: {requests: {cpu: 100m, memory: 32Mi}}
        """
    }

    /// A pod whose one container records, in `ledger` on the host, when each of its runs started
    /// and when it was last alive (host uptime), like the failover tests' witness job.
    public static func witnessPod(_ name: String, ledger: String) -> String {
        """
        apiVersion: v1
        kind: Pod
        metadata:
          name: \(name)
        spec:
          restartPolicy: Never
          containers:
          - name: main
            image: \(TestPodman.image)
            command: ["/bin/sh", "-c", "f=/ledger/run-`cat /proc/sys/kernel/random/uuid`; cut -d' ' -f1 /proc/uptime > $f.start; while true; do cut -d' ' -f1 /proc/uptime > $f.alive.tmp; mv $f.alive.tmp $f.alive; sleep 0.1; done"]
            resources: {requests: {cpu: 100m, memory: 32Mi}}
            volumeMounts:
            - {name: ledger, mountPath: /ledger}
          volumes:
          - name: ledger
            hostPath: {path: \(ledger), type: Directory}
        """
    }
}
