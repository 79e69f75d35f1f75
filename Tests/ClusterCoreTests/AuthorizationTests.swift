import SpecolaJobs
import SpecolaWire
import Testing
@testable import SpecolaClusterCore
import CooperativePoolWatch

/// The one authorization decision, one rule per test.
@Suite(.watchesCooperativePool) struct AuthorizationTests {
    let alice = Principal(kind: .user, name: "alice")
    let node = Principal(kind: .node, name: "node1")
    let coordinator = Principal(kind: .coordinator, name: "c2")

    func decide(_ principal: Principal, _ roles: Set<AccessRole>, _ verb: Verb, _ resource: Resource = .cluster) -> Decision {
        Authorization.authorize(principal, roles: roles, verb, resource)
    }

    func message(_ decision: Decision) -> String {
        if case .deny(let message) = decision { return message }
        return ""
    }

    @Test func anAdminMayDoEveryUserVerb() {
        for verb in Verb.allCases where verb != .agentLink && verb != .raftPeer {
            #expect(decide(alice, [.admin], verb, .job("j", project: "astro")) == .allow, "\(verb)")
        }
    }

    @Test func anOperatorRunsNodesAlertsAndStorageButNotMembershipPKIOrFencing() {
        for verb in [Verb.nodeSchedule, .nodeAdmit, .alertAck, .storageRepair, .kvWrite, .clusterRead] {
            #expect(decide(alice, [.operator], verb) == .allow, "\(verb)")
        }
        for verb in [Verb.membershipChange, .accessChange, .pkiRevoke, .nodeFence, .silenceChange, .workloadChange, .snapshotSave, .auditRead] {
            let refusal = message(decide(alice, [.operator], verb))
            #expect(refusal.contains("it needs admin"), "\(verb): \(refusal)")
        }
    }

    @Test func anOperatorChangingMembershipIsToldWhoWhatWhichAndWhatWouldAllowIt() {
        let refusal = message(decide(alice, [.operator], .accessChange, .project("astro")))
        #expect(refusal == "user/alice may not access.change on project/astro: it needs admin; user/alice holds operator")
    }

    @Test func aViewerOnlyReads() {
        for verb in [Verb.clusterRead, .jobRead, .kvRead, .accessRead, .usageRead] {
            #expect(decide(alice, [.viewer], verb) == .allow, "\(verb)")
        }
        let refusal = message(decide(alice, [.viewer], .jobSubmit, .job("astro/j", project: "astro")))
        #expect(refusal == "user/alice may not job.submit on job/astro/j: it needs admin or member of astro; user/alice holds viewer")
        #expect(message(decide(alice, [.viewer], .kvWrite)).contains("it needs operator or admin"))
        #expect(message(decide(alice, [.viewer], .auditRead)).contains("it needs admin"))
    }

    @Test func aMemberManagesItsOwnProjectsJobsOnly() {
        let roles: Set<AccessRole> = [.member(project: "astro")]
        #expect(decide(alice, roles, .jobSubmit, .job("j", project: "astro")) == .allow)
        #expect(decide(alice, roles, .jobCancel, .job("j", project: "astro")) == .allow)
        let refusal = message(decide(alice, roles, .jobCancel, .job("radio/j", project: "radio")))
        #expect(refusal == "user/alice may not job.cancel on job/radio/j: it needs admin or member of radio; user/alice holds member of astro")
        #expect(decide(alice, roles, .jobRead) == .allow, "a member lists jobs (its projects' only)")
    }

    /// Jobs are read within projects: a member reads its own projects' jobs, the cluster-wide roles all.
    @Test func aMemberReadsItsProjectsJobsAndViewersReadAll() {
        let member: Set<AccessRole> = [.member(project: "astro")]
        #expect(decide(alice, member, .jobRead, .job("astro/j", project: "astro")) == .allow)
        #expect(message(decide(alice, member, .jobRead, .job("radio/j", project: "radio")))
            == "user/alice may not job.read on job/radio/j: it needs viewer, operator, admin or member of radio; user/alice holds member of astro")
        for role in [AccessRole.viewer, .operator, .admin] {
            #expect(decide(alice, [role, .member(project: "astro")], .jobRead, .job("radio/j", project: "radio")) == .allow, "\(role)")
            #expect(Authorization.readableProjects(alice, roles: [role]) == nil)
        }
        #expect(Authorization.readableProjects(alice, roles: member) == ["astro"])
        #expect(Authorization.readableProjects(coordinator, roles: []) == nil)
        #expect(message(decide(alice, [], .jobRead, .job("astro/j", project: "astro"))).contains("holds no role"))
    }

    /// Step outputs live under `jobs/PROJECT/NAME/outputs/`: the project's members read and write
    /// them, another project's members do neither; viewers read, operators write; other keys keep their roles.
    @Test func aProjectsStepOutputsAreItsMembersAndNoOtherProjects() {
        let key = JobBook.outputKey(job: "radio/reduce", step: "prepare", instance: "0", key: "bias")
        #expect(Resource.kv(key).project == "radio")
        let astro: Set<AccessRole> = [.member(project: "astro")]
        #expect(message(decide(alice, astro, .kvRead, .kv(key)))
            == "user/alice may not kv.read on kv/\(key) (project radio): it needs viewer, operator, admin or member of radio; user/alice holds member of astro")
        #expect(message(decide(alice, astro, .kvWrite, .kv(key)))
            == "user/alice may not kv.write on kv/\(key) (project radio): it needs operator, admin or member of radio; user/alice holds member of astro")
        #expect(!decide(alice, astro, .kvRead, .kv(JobBook.outputPrefix(job: "radio/reduce", step: "prepare"))).isAllowed)
        let radio: Set<AccessRole> = [.member(project: "radio")]
        #expect(decide(alice, radio, .kvRead, .kv(key)) == .allow)
        #expect(decide(alice, radio, .kvWrite, .kv(key)) == .allow)
        #expect(decide(alice, [.viewer], .kvRead, .kv(key)) == .allow)
        #expect(!decide(alice, [.viewer], .kvWrite, .kv(key)).isAllowed)
        #expect(decide(alice, [.operator], .kvWrite, .kv(key)) == .allow)
        // Outside `jobs/PROJECT/`: members read, only operators write, as before.
        for other in ["config/site", "jobs/", "jobs/radio", "nodes/node1/x"] {
            #expect(Resource.kv(other).project == nil, "\(other)")
            #expect(decide(alice, astro, .kvRead, .kv(other)) == .allow, "\(other)")
            #expect(message(decide(alice, astro, .kvWrite, .kv(other))).contains("it needs operator or admin"), "\(other)")
        }
        // A listing wider than one project shows a member its own projects' keys only.
        #expect(KVScope.isListed(key, readable: ["radio"]))
        #expect(!KVScope.isListed(key, readable: ["astro"]))
        #expect(KVScope.isListed(key, readable: nil))
        #expect(KVScope.isListed("config/site", readable: ["astro"]))
    }

    @Test func exceptionalJobVerbsAreTheAdminsUnlessTheProjectAllowsThem() {
        let roles: Set<AccessRole> = [.member(project: "astro")]
        #expect(message(decide(alice, roles, .jobExec, .job("j", project: "astro"))).contains("it needs admin"))
        #expect(message(decide(alice, roles, .jobMount, .job("j", project: "astro"))).contains("it needs admin"))
    }

    @Test func aUserWithNoRoleIsRefusedEvenReadsAndToldHowToGetOne() {
        let refusal = message(decide(alice, [], .clusterRead))
        #expect(refusal.contains("user/alice holds no role"))
        #expect(refusal.contains("specola access grant"))
    }

    @Test func aNodeKeepsExactlyTheAgentLinkAndItsKV() {
        #expect(decide(node, [], .agentLink) == .allow)
        #expect(decide(node, [], .kvRead) == .allow)
        #expect(decide(node, [], .kvWrite) == .allow)
        for verb in Verb.allCases where ![.agentLink, .kvRead, .kvWrite].contains(verb) {
            #expect(!decide(node, [.admin], verb).isAllowed, "\(verb)")
        }
    }

    @Test func aCoordinatorKeepsWhatItHadAndGainsNothing() {
        for verb in [Verb.raftPeer, .clusterRead, .jobSubmit, .jobCancel, .nodeFence, .nodeSchedule, .alertAck, .silenceChange,
                     .workloadChange, .leadershipTransfer, .kvWrite, .storageRepair] {
            #expect(decide(coordinator, [], verb) == .allow, "\(verb)")
        }
        for verb in [Verb.nodeAdmit, .pkiRevoke, .membershipChange, .snapshotSave, .accessChange, .auditRead, .agentLink] {
            #expect(!decide(coordinator, [], verb).isAllowed, "\(verb)")
        }
    }

    @Test func usersMayNotSpeakTheMachineVerbs() {
        #expect(message(decide(alice, [.admin], .agentLink)).contains("it needs a node certificate"))
        #expect(message(decide(alice, [.admin], .raftPeer)).contains("it needs a coordinator certificate"))
    }

    // MARK: - Where roles come from

    @Test func rolesComeFromBootstrapBindingsProjectsAndTokenGroups() {
        var book = AccessBook()
        _ = book.apply(Specola_V1_ProjectCommand.with { $0.name = "astro"; $0.create = .with { $0.members = ["bob"] } }, at: 1)
        _ = book.apply(Specola_V1_RoleBindingCommand.with { $0.grant = .with { $0.user = "carol"; $0.role = "operator" } }, at: 2)
        let policy = AccessPolicy(bootstrapAdmins: ["root"], groupRoles: ["ops": .operator], groupProjects: ["survey": ["radio"]])
        #expect(policy.roles(of: Principal(kind: .user, name: "root"), in: book) == [.admin])
        #expect(policy.roles(of: Principal(kind: .user, name: "root", proof: .token(issuer: "https://idp")), in: book) == [],
                "bootstrap admins are certificate users")
        #expect(policy.roles(of: Principal(kind: .user, name: "bob"), in: book) == [.member(project: "astro")])
        #expect(policy.roles(of: Principal(kind: .user, name: "carol"), in: book) == [.operator])
        let tokenUser = Principal(kind: .user, name: "dave", groups: ["ops", "survey"], proof: .token(issuer: "https://idp"))
        #expect(policy.roles(of: tokenUser, in: book) == [.operator, .member(project: "radio")])
        #expect(policy.roles(of: Principal(kind: .node, name: "root"), in: book) == [])
    }

    @Test func anUnenforcedPolicyAllowsEverything() {
        let policy = AccessPolicy(enforced: false)
        #expect(policy.authorize(alice, .accessChange, .cluster, in: AccessBook()) == .allow)
    }
}

/// Projects and bindings as replicated objects.
@Suite(.watchesCooperativePool) struct AccessBookTests {
    @Test func projectsAreCreatedOnceChangedWithoutLosingMembersAndSnapshotted() {
        var state = ClusterState()
        let create = Specola_V1_Command.project("astro", at: 10, .create(.with { $0.members = ["bob"]; $0.weight = 2 }))
        #expect(state.apply(create) == .done)
        guard case .rejected(let again) = state.apply(create) else { Issue.record("a second create must be refused"); return }
        #expect(again.contains("project 'astro' exists"))
        #expect(state.apply(.project("astro", at: 11, .set(.with { $0.maxTasks = 3 }))) == .done)
        #expect(state.apply(.project("astro", at: 12, .members(.with { $0.add = ["carol"]; $0.remove = ["bob"] }))) == .done)
        let project = state.access.projects["astro"]
        #expect(project?.members == ["carol"])
        #expect(project?.maxTasks == 3)
        #expect(project?.weight == 0, "set replaces the limits")
        #expect(project?.createdAtUnixMs == 10)
        let restored = try? ClusterState(snapshot: state.snapshot())
        #expect(restored?.access.projects == state.access.projects)
    }

    @Test func aSnapshotFromBeforeProjectsRestoresWithNone() throws {
        var old = Specola_V1_ClusterSnapshot()
        old.kvRevision = 3
        let state = try ClusterState(snapshot: Specola_V1_ClusterSnapshot(serializedBytes: try old.serializedBytes() as [UInt8]))
        #expect(state.access.projects.isEmpty && state.access.bindings.isEmpty && state.access.audit.isEmpty)
    }

    @Test func bindingsNeedARealRoleAndAnExistingProjectForMember() {
        var book = AccessBook()
        guard case .rejected(let bad) = book.apply(.with { $0.grant = .with { $0.user = "a"; $0.role = "root" } }, at: 1),
              case .rejected(let noProject) = book.apply(.with { $0.grant = .with { $0.user = "a"; $0.role = "member"; $0.project = "x" } }, at: 1)
        else { Issue.record("both must be refused"); return }
        #expect(bad.contains("'root' is not a role"))
        #expect(noProject.contains("no project 'x'"))
        #expect(book.apply(.with { $0.grant = .with { $0.user = "a"; $0.role = "viewer" } }, at: 1) == .done)
        #expect(book.apply(.with { $0.grant = .with { $0.user = "a"; $0.role = "viewer" } }, at: 2) == .done)
        #expect(book.bindings.count == 1, "granting twice keeps one binding")
        #expect(book.apply(.with { $0.revoke = .with { $0.user = "a"; $0.role = "viewer" } }, at: 3) == .done)
        #expect(book.bindings.isEmpty)
    }

    @Test func auditRetentionDropsOldRecordsThenCapsTheCount() {
        var book = AccessBook()
        let records = (1...10).map { index in Specola_V1_AuditRecord.with { $0.atUnixMs = Int64(index) * 100; $0.verb = "job.submit" } }
        _ = book.apply(Specola_V1_AuditCommand.with { $0.records = records; $0.dropBeforeUnixMs = 300; $0.maxRecords = 5 })
        #expect(book.audit.map(\.atUnixMs) == [600, 700, 800, 900, 1000])
        #expect(book.auditRecords(since: 800, user: "", verb: "job", limit: 0).count == 3)
    }
}

/// A job's owner, project and limits at submission.
@Suite(.watchesCooperativePool) struct JobAdmissionTests {
    let bob = Principal(kind: .user, name: "bob")

    func spec(project: String = "astro", priority: Int = 50, task: String = "image: docker.io/library/busybox") -> JobSpec {
        let yaml = """
            apiVersion: specola/v1
            kind: Job
            metadata: {name: j, owner: somebody-else, project: \(project), priority: \(priority)}
            task:
              name: t
              \(task.hasPrefix("driver") ? "" : "driver: podman")
              \(task)
              resources: {cpu: 1, memory: 64MiB}
            """
        guard case .success(let spec) = JobSpecParser.parse(yaml, file: "j.yaml") else { fatalError("test spec does not parse: \(yaml)") }
        return spec
    }

    let projects: [String: Specola_V1_Project] = [
        "astro": .with { $0.name = "astro"; $0.members = ["bob"]; $0.imagePrefixes = ["docker.io/library/"]; $0.archiveMounts = ["/archive"] },
    ]
    let member: Set<AccessRole> = [.member(project: "astro")]

    func refusal(_ spec: JobSpec, roles: Set<AccessRole>? = nil) -> JobAdmission.Refusal? {
        if case .failure(let refusal) = JobAdmission.admit(spec, by: bob, roles: roles ?? member, projects: projects) { return refusal }
        return nil
    }

    @Test func theOwnerIsTheCallerWhateverTheSpecSays() throws {
        let admitted = try JobAdmission.admit(spec(), by: bob, roles: member, projects: projects).get()
        #expect(admitted.metadata.owner == "bob")
    }

    @Test func theProjectMustBeOneOfTheCallers() {
        let refused = refusal(spec(project: "radio"))
        #expect(refused?.verb == .jobSubmit)
        #expect(refused?.message.contains("needs admin or member of radio; user/bob is a member of astro") == true, "\(refused?.message ?? "")")
    }

    @Test func priorityIsBoundedByTheProject() {
        #expect(refusal(spec(priority: 90))?.message.contains("priority 90 is above project astro's bound 50") == true)
    }

    @Test func execNeedsTheProjectToAllowIt() {
        let refused = refusal(spec(task: "driver: exec\n  command: /bin/true"))
        #expect(refused?.verb == .jobExec)
        #expect(refused?.message.contains("uses the exec driver, which project astro does not allow") == true, "\(refused?.message ?? "")")
    }

    @Test func hostMountsOnlyUnderTheProjectsArchiveMountsAndReadOnly() {
        let outside = refusal(spec(task: "image: docker.io/library/busybox\n  mounts: [{source: /etc, target: /data}]"))
        #expect(outside?.verb == .jobMount)
        #expect(outside?.message.contains("mounts /etc, outside project astro's archive mounts (/archive)") == true, "\(outside?.message ?? "")")
        #expect(refusal(spec(task: "image: docker.io/library/busybox\n  mounts: [{source: /archive/run1, target: /data}]")) == nil)
        let writable = refusal(spec(task: "image: docker.io/library/busybox\n  mounts: [{source: /archive/run1, target: /data, readOnly: false}]"))
        #expect(writable?.message.contains("read-write") == true)
    }

    @Test func imagesOnlyUnderTheProjectsPrefixes() {
        #expect(refusal(spec(task: "image: quay.io/evil/miner"))?.message.contains("outside project astro's image prefixes") == true)
    }

    @Test func anAdminMayUseAnyProjectAndAnyLimit() {
        #expect(refusal(spec(project: "radio", priority: 90, task: "driver: exec\n  command: /bin/true"), roles: [.admin]) == nil)
    }
}
