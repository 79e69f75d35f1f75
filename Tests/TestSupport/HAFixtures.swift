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
}
