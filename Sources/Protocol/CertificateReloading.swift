import Foundation
import Logging
import NIOCertificateReloading
import Synchronization
import X509

extension TLSFiles {
    /// How often a long-running process re-reads its certificate and key.
    public static let reloadInterval = Duration.seconds(5)

    /// A reloader for this process's own certificate and key: new connections use what the files
    /// hold now, open ones keep theirs, so a re-issued certificate takes effect without a restart.
    /// A pair that does not match (a key written before its certificate) is skipped until it does.
    /// Run its `run()` for as long as the process serves or dials.
    public func makeReloader(logger: Logger) throws -> TimedCertificateReloader {
        let lastLoaded = Mutex<(serial: String?, failure: String?)>((nil, nil))
        let configuration = TimedCertificateReloader.Configuration(
            refreshInterval: Self.reloadInterval,
            certificateSource: .init(location: .file(path: cert), format: .pem),
            privateKeySource: .init(location: .file(path: key), format: .pem)
        ) { [cert] configuration in
            configuration.onCertificateLoaded = { diff in
                guard let leaf = diff.currentX509CertificateChain.first else { return }
                let serial = "\(leaf.serialNumber)"
                let previous = lastLoaded.withLock { state -> String? in
                    defer { state = (serial, nil) }
                    return state.serial
                }
                if let previous, previous != serial {
                    logger.notice("reloaded this process's certificate", metadata: [
                        "cert.path": "\(cert)", "cert.serial": "\(serial)", "cert.not_after": "\(leaf.notValidAfter)",
                    ])
                }
            }
            configuration.onCertificateLoadFailed = { failure in
                let text = "\(failure.error)"
                let isNew = lastLoaded.withLock { state -> Bool in
                    defer { state.failure = text }
                    return state.failure != text
                }
                if isNew {
                    logger.warning("cannot reload this process's certificate; keeping the one in use", metadata: [
                        "cert.path": "\(cert)", "error": "\(text)",
                    ])
                }
            }
        }
        return try TimedCertificateReloader.makeReloaderValidatingSources(configuration: configuration)
    }
}
