import GRPCCore
import SpecolaClusterCore
import SpecolaProtocol

/// `specola whoami`: who this coordinator takes the caller to be.
struct IdentityService: Specola_V1_Identity.SimpleServiceProtocol {
    func whoAmI(request: Specola_V1_WhoAmIRequest, context: ServerContext) async throws -> Specola_V1_WhoAmIResponse {
        let principal = try CallerIdentity.principal(context)
        return .with {
            $0.kind = principal.kind.rawValue
            $0.name = principal.name
            $0.groups = principal.groups
            switch principal.proof {
            case .certificate: $0.proof = "certificate"
            case .token(let issuer):
                $0.proof = "token"
                $0.issuer = issuer
            }
        }
    }
}
