/// A rule added in config: fire when a metric crosses a value for long enough.
/// `cpu_temp_c > 90 for 60 s, critical`.
public struct ThresholdRule: Sendable, Hashable, Codable {
    public enum Comparison: String, Sendable, Hashable, Codable, CaseIterable {
        case greater = ">"
        case greaterOrEqual = ">="
        case less = "<"
        case lessOrEqual = "<="
        case equal = "=="
        case notEqual = "!="
    }

    /// The alert's rule name (`alertname`).
    public var name: String
    /// The sample name to read, e.g. `cpu_temp_c`.
    public var metric: String
    public var comparison: Comparison
    public var value: Double
    /// How long the condition must hold before the alert fires; 0 fires on the first sample.
    public var forMs: Int64
    public var severity: AlertSeverity
    /// Labels added to the subject's labels (e.g. `team: hpc`).
    public var labels: Labels

    public init(
        name: String, metric: String, comparison: Comparison, value: Double, forMs: Int64 = 0,
        severity: AlertSeverity = .warning, labels: Labels = [:]
    ) {
        self.name = name
        self.metric = metric
        self.comparison = comparison
        self.value = value
        self.forMs = forMs
        self.severity = severity
        self.labels = labels
    }

    /// Decodes a config entry; `forMs`, `severity` and `labels` are optional.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.decode(String.self, forKey: .name)
        metric = try container.decode(String.self, forKey: .metric)
        comparison = try container.decode(Comparison.self, forKey: .comparison)
        value = try container.decode(Double.self, forKey: .value)
        forMs = try container.decodeIfPresent(Int64.self, forKey: .forMs) ?? 0
        severity = try container.decodeIfPresent(AlertSeverity.self, forKey: .severity) ?? .warning
        labels = try container.decodeIfPresent(Labels.self, forKey: .labels) ?? [:]
    }

    public func holds(for sample: Double) -> Bool {
        switch comparison {
        case .greater: return sample > value
        case .greaterOrEqual: return sample >= value
        case .less: return sample < value
        case .lessOrEqual: return sample <= value
        case .equal: return sample == value
        case .notEqual: return sample != value
        }
    }

    public func validate() throws(AlertingError) {
        let place = "threshold rule '\(name)'"
        guard !name.isEmpty, !metric.isEmpty else {
            throw AlertingError(.invalidConfig, "a threshold rule needs a name and a metric (rule '\(name)', metric '\(metric)')")
        }
        guard !BuiltinRule.all.contains(name) else {
            throw AlertingError(.invalidConfig, "\(place): the name is a built-in rule's; choose another")
        }
        guard value.isFinite, forMs >= 0 else {
            throw AlertingError(.invalidConfig, "\(place): value must be a finite number and forMs not negative")
        }
    }
}

/// Evaluates threshold rules over samples of one subject (a node, say) and returns the
/// alert changes to propose. It remembers since when each condition holds; that memory is
/// the leader's own, so a new leader starts each `for` period over.
public struct ThresholdEvaluator: Sendable, Hashable {
    public var rules: [ThresholdRule]
    /// Fingerprint → when its condition started to hold.
    public private(set) var holdingSince: [String: Int64] = [:]

    public init(rules: [ThresholdRule]) {
        self.rules = rules
    }

    /// A metric missing from `samples` (or NaN) is no data and changes nothing. A condition
    /// that stops holding resolves the alert if the book has it firing, also when an earlier
    /// leader fired it.
    public mutating func evaluate(
        _ samples: [String: Double], subject: Labels, book: AlertBook, atUnixMs now: Int64
    ) -> [AlertChange] {
        var changes: [AlertChange] = []
        for rule in rules {
            guard let sample = samples[rule.metric], !sample.isNaN else { continue }
            let labels = subject.merging(rule.labels) { $1 }
            let fingerprint = Alert.fingerprint(rule: rule.name, labels: labels)
            let firing = book.alerts[fingerprint]?.status == .firing
            guard rule.holds(for: sample) else {
                holdingSince[fingerprint] = nil
                if firing { changes.append(.resolve(fingerprint: fingerprint, atUnixMs: now)) }
                continue
            }
            let since = holdingSince[fingerprint] ?? now
            holdingSince[fingerprint] = since
            guard !firing, now - since >= rule.forMs else { continue }
            let subjectText = subject.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            changes.append(
                .fire(
                    rule: rule.name, labels: labels, severity: rule.severity,
                    summary: "\(rule.metric) \(rule.comparison.rawValue) \(formatted(rule.value)) on \(subjectText)",
                    description: "\(rule.metric) is \(formatted(sample)) (threshold \(rule.comparison.rawValue) \(formatted(rule.value)), "
                        + "held for \((now - since) / 1000) s)",
                    atUnixMs: now))
        }
        return changes
    }

    private func formatted(_ number: Double) -> String {
        number == number.rounded() && abs(number) < 1e15 ? String(Int64(number)) : String(number)
    }
}
