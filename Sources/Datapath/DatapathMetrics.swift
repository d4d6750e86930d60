import CBPF

/// Slot of a (drop reason, direction) counter in the per-CPU `cilium_metrics`
/// array; the same formula as `CILIUM_METRICS_INDEX` in `cilium_maps.h`
/// (a function-like C macro Swift cannot import).
public func ciliumMetricsIndex(reason: UInt8, direction: UInt8) -> UInt32 {
    (UInt32(reason) << 1) | UInt32(direction & 1)
}
