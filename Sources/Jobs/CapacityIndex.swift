/// The nodes of one pool sorted by free capacity, so that the best-fitting node is found by binary search
/// instead of a scan of the whole cluster.
///
/// Order is ascending by (free CPU, free memory, node number); node numbers follow node names, which makes
/// every tie-break deterministic. Free capacity only shrinks during a plan, so an update moves a node left.
struct CapacityIndex {
    /// Node numbers in order.
    private(set) var order: [Int32] = []
    /// Free CPU of `order[i]`, kept alongside for a cache-friendly binary search.
    private var freeCPU: [Int64] = []

    var count: Int { order.count }

    /// Builds the index; `slots[node]` receives each node's position.
    init(nodes: [Int32], cpu: [Int64], memory: [Int64], slots: inout [Int32]) {
        order = nodes.sorted { (cpu[Int($0)], memory[Int($0)], $0) < (cpu[Int($1)], memory[Int($1)], $1) }
        freeCPU = order.map { cpu[Int($0)] }
        for (position, node) in order.enumerated() { slots[Int(node)] = Int32(position) }
    }

    /// The first position whose free CPU is at least `cpu`.
    func firstPosition(withCPU cpu: Int64) -> Int {
        var low = 0
        var high = freeCPU.count
        while low < high {
            let middle = (low + high) / 2
            if freeCPU[middle] < cpu { low = middle + 1 } else { high = middle }
        }
        return low
    }

    /// Re-sorts `node` after its free capacity shrank to (`cpu`, `memory`).
    mutating func shrink(node: Int32, cpu: [Int64], memory: [Int64], slots: inout [Int32]) {
        let from = Int(slots[Int(node)])
        let key = (cpu[Int(node)], memory[Int(node)], node)
        // Binary search in the prefix, which is still sorted, for the first entry not below the new key.
        var low = 0
        var high = from
        while low < high {
            let middle = (low + high) / 2
            let other = order[middle]
            if (cpu[Int(other)], memory[Int(other)], other) < key { low = middle + 1 } else { high = middle }
        }
        var position = from
        while position > low {
            order[position] = order[position - 1]
            freeCPU[position] = freeCPU[position - 1]
            slots[Int(order[position])] = Int32(position)
            position -= 1
        }
        order[low] = node
        freeCPU[low] = cpu[Int(node)]
        slots[Int(node)] = Int32(low)
    }
}
