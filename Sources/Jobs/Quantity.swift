/// Parses and prints the human units of a spec: sizes ("4GiB"), durations ("30m") and CPU ("0.5", "500m").
///
/// The grammar here and the patterns in `specola-job.schema.json` must accept the same strings.
public enum Quantity {
    /// Bytes from an integer or a size such as "512MiB", "4GiB", "100G" or "1.5TiB"; nil when not a size.
    public static func bytes(_ text: String) -> Int64? {
        let units: [(String, Double)] = [
            ("KiB", 0x1p10), ("MiB", 0x1p20), ("GiB", 0x1p30), ("TiB", 0x1p40), ("PiB", 0x1p50),
            ("Ki", 0x1p10), ("Mi", 0x1p20), ("Gi", 0x1p30), ("Ti", 0x1p40), ("Pi", 0x1p50),
            ("KB", 1e3), ("MB", 1e6), ("GB", 1e9), ("TB", 1e12), ("PB", 1e15),
            ("K", 1e3), ("M", 1e6), ("G", 1e9), ("T", 1e12), ("P", 1e15), ("B", 1),
        ]
        var number = Substring(text)
        var multiplier = 1.0
        // Longest suffix first, so "GiB" is not read as "B".
        for (suffix, factor) in units where number.hasSuffix(suffix) {
            number = number.dropLast(suffix.count)
            multiplier = factor
            break
        }
        guard let value = decimal(number), value >= 0 else { return nil }
        let bytes = (value * multiplier).rounded()
        return bytes < 0x1p62 ? Int64(bytes) : nil
    }

    /// Seconds from an integer or a duration such as "90s", "30m", "2h" or "1h30m"; nil when not a duration.
    public static func seconds(_ text: String) -> Int64? {
        if let plain = Int64(text), plain >= 0 { return plain }
        var total: Int64 = 0
        var digits = ""
        var lastUnitRank = 0
        for character in text {
            if character.isASCII, character.isNumber {
                digits.append(character)
                continue
            }
            let ranks: [Character: (rank: Int, scale: Int64)] = ["h": (1, 3600), "m": (2, 60), "s": (3, 1)]
            // Units must come in h, m, s order and each at most once, so "30m1h" is rejected as a typo.
            guard let unit = ranks[character], unit.rank > lastUnitRank, let amount = Int64(digits) else { return nil }
            total += amount * unit.scale
            lastUnitRank = unit.rank
            digits = ""
        }
        return digits.isEmpty && lastUnitRank > 0 ? total : nil
    }

    /// Millicores from cores ("2", "0.5") or a millicore string ("500m"); nil when not a CPU amount.
    public static func millicores(_ text: String) -> Int64? {
        if text.hasSuffix("m") {
            guard let milli = Int64(text.dropLast()), milli >= 0 else { return nil }
            return milli
        }
        guard let cores = decimal(Substring(text)), cores >= 0, cores < 1e12 else { return nil }
        return Int64((cores * 1000).rounded())
    }

    /// "64 cores", "0.5 cores", "1 core".
    public static func formatCores(_ millicores: Int64) -> String {
        millicores == 1000 ? "1 core" : "\(formatCoreNumber(millicores)) cores"
    }

    /// "64", "0.5": cores without the unit.
    public static func formatCoreNumber(_ millicores: Int64) -> String {
        millicores % 1000 == 0 ? String(millicores / 1000) : String(Double(millicores) / 1000)
    }

    /// "4GiB", "512MiB", "1.5TiB", "100B": the largest binary unit that keeps the number readable.
    public static func formatBytes(_ bytes: Int64) -> String {
        let units: [(String, Int64)] = [("PiB", 1 << 50), ("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)]
        for (suffix, size) in units where bytes >= size {
            if bytes % size == 0 { return "\(bytes / size)\(suffix)" }
            let tenths = (bytes * 10 + size / 2) / size
            return "\(tenths / 10).\(tenths % 10)\(suffix)"
        }
        return "\(bytes)B"
    }

    /// A plain non-negative decimal ("12", "0.5"); rejects exponents, signs and spaces so typos stay visible.
    private static func decimal(_ text: Substring) -> Double? {
        guard !text.isEmpty, text.first != ".", text.last != ".",
            text.allSatisfy({ ($0.isASCII && $0.isNumber) || $0 == "." }),
            text.filter({ $0 == "." }).count <= 1
        else { return nil }
        return Double(text)
    }
}
