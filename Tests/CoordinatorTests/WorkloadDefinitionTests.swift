import CooperativePoolWatch
import Testing
@testable import SpecolaClusterCore
@testable import SpecolaCoordinator

/// What `specola pod create` accepts as kube YAML.
@Suite(.watchesCooperativePool) struct WorkloadDefinitionTests {
    @Test func kubeYAMLWithAnchorsIsRefusedBeforeItIsExpanded() throws {
        var yaml = "kind: Pod\nmetadata: {name: p}\nx0: &l0 \"lol\"\n"
        for level in 1...10 {
            yaml += "x\(level): &l\(level) [" + Array(repeating: "*l\(level - 1)", count: 10).joined(separator: ", ") + "]\n"
        }
        yaml += "spec: {containers: [{name: c, image: i}]}\n"
        do {
            _ = try WorkloadDefinition.inspect(kind: .pod, yaml)
            Issue.record("kube YAML with aliases was accepted")
        } catch {
            #expect("\(error)".contains("line 3: YAML anchors and aliases"), "\(error)")
        }
    }

    @Test func plainKubeYAMLIsAccepted() throws {
        let pod = try WorkloadDefinition.inspect(kind: .pod, """
            kind: Pod
            metadata: {name: p}
            spec: {containers: [{name: c, image: i, resources: {requests: {cpu: 500m}}}]}
            """)
        #expect(pod.name == "p")
    }
}

/// Host access that HA VMs and pods may not have unless the coordinator's `workloads:` allows it.
@Suite(.watchesCooperativePool) struct WorkloadHostAccessTests {
    func refusal(_ kind: WorkloadKind, _ text: String, policy: WorkloadPolicy = WorkloadPolicy()) -> String {
        do {
            let inspected = try WorkloadDefinition.inspect(kind: kind, text, policy: policy)
            return "accepted as \(inspected.name)"
        } catch {
            return "\(error)"
        }
    }

    func domain(_ devices: String, name: String = "vm1") -> String {
        """
        <domain type='test' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
          <name>\(name)</name>
          <memory unit='MiB'>64</memory>
          <vcpu>2</vcpu>
          <os><type>hvm</type></os>
          <devices>\(devices)</devices>
        </domain>
        """
    }

    @Test func aPassedThroughHostDeviceIsRefused() {
        let xml = domain("<hostdev mode='subsystem' type='pci'><source><address domain='0' bus='3' slot='0' function='0'/></source></hostdev>")
        #expect(refusal(.vm, xml) == "the domain XML passes a host device through (<hostdev type='pci'>); HA VMs may not use host devices")
    }

    @Test func aHostBlockDeviceIsRefusedUnlessAllowed() {
        let xml = domain("<disk type='block' device='disk'><source dev='/dev/sda'/><target dev='vda'/></disk>")
        #expect(refusal(.vm, xml) == "the domain XML attaches host block device '/dev/sda', which is not in workloads.allowedBlockDevices of the coordinator's configuration (allowed now: none)")
        #expect(refusal(.vm, xml, policy: WorkloadPolicy(allowedBlockDevices: ["/dev/sda"])) == "accepted as vm1")
    }

    @Test func qemuNamespaceElementsAreRefused() {
        let xml = domain("") .replacingOccurrences(of: "</domain>", with: "<qemu:commandline><qemu:arg value='-fw_cfg'/></qemu:commandline></domain>")
        #expect(refusal(.vm, xml) == "the domain XML has <qemu:commandline>: elements of a hypervisor namespace (qemu:, lxc: ...) pass host options through and are refused")
    }

    @Test func theVMNameComesFromTheDocumentNotFromAComment() throws {
        let xml = domain("").replacingOccurrences(of: "<name>vm1</name>", with: "<!-- <name>unmanaged-db</name> --><name>vm1</name>")
        let inspected = try WorkloadDefinition.inspect(kind: .vm, xml)
        #expect(inspected.name == "vm1")
        #expect(inspected.memoryBytes == 64 << 20 && inspected.cpuMillicores == 2000)
    }

    @Test func aDoctypeIsRefusedBeforeParsing() {
        let xml = "<!DOCTYPE domain [<!ENTITY x SYSTEM 'file:///etc/shadow'>]>" + domain("").replacingOccurrences(of: "vm1", with: "&x;")
        #expect(refusal(.vm, xml) == "the domain XML has a <!DOCTYPE>; libvirt needs none, remove it")
    }

    func pod(_ spec: String) -> String {
        """
        apiVersion: v1
        kind: Pod
        metadata: {name: web}
        spec:
        \(spec)
        """
    }

    @Test func aHostPathOfTheRootIsRefused() {
        let yaml = pod("""
              containers: [{name: c, image: i, volumeMounts: [{name: host, mountPath: /host}]}]
              volumes: [{name: host, hostPath: {path: /}}]
            """)
        #expect(refusal(.pod, yaml) == "the Pod 'web' has a hostPath volume: host path '/' is not under workloads.hostPathPrefixes of the coordinator's configuration (allowed now: none)")
        let allowed = yaml.replacingOccurrences(of: "path: /}", with: "path: /srv/web/static}")
        #expect(refusal(.pod, allowed, policy: WorkloadPolicy(hostPathPrefixes: ["/srv/web"])) == "accepted as web")
    }

    @Test func aPrivilegedPodIsRefusedHoweverItIsSpelled() {
        for flag in ["privileged: true", "Privileged: yes"] {
            let yaml = pod("  containers: [{name: c, image: i, securityContext: {\(flag)}}]")
            #expect(refusal(.pod, yaml) == "the Pod 'web' has privileged: true in container 'c'; HA pods may not run privileged containers", "\(flag)")
        }
    }

    @Test func theHostsNamespacesAreRefused() {
        for field in ["hostPID", "hostNetwork", "hostIPC"] {
            let yaml = pod("  \(field): true\n  containers: [{name: c, image: i}]")
            #expect(refusal(.pod, yaml) == "the Pod 'web' sets spec.\(field): true; HA pods may not share the host's namespaces")
        }
    }

    @Test func aSecondDocumentIsRefused() {
        let yaml = pod("  containers: [{name: c, image: i}]") + "\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: more}\n"
        #expect(refusal(.pod, yaml) == "the kube YAML must be exactly one document of kind Pod (it holds 2: Pod, Deployment)")
    }
}
