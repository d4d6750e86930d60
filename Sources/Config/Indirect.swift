/// Keeps a configuration section out of line (in a shared, immutable box,
/// copied on write). `AgentConfig` is copied into many async contexts; past a
/// certain inline size, the statically linked release agent corrupted its heap
/// at start (dynamic and debug builds did not), so the larger sections live
/// behind one pointer each. Reads and writes look the same as for a plain
/// stored property; Codable and Equatable see the value.
@propertyWrapper
public struct Indirect<Value: Sendable & Equatable & Codable>: Sendable, Equatable, Codable {
    private final class Box: Sendable {
        let value: Value
        init(_ value: Value) { self.value = value }
    }

    private var box: Box

    public init(wrappedValue: Value) { box = Box(wrappedValue) }

    public var wrappedValue: Value {
        get { box.value }
        set { box = Box(newValue) }
    }

    public static func == (a: Indirect, b: Indirect) -> Bool { a.box === b.box || a.box.value == b.box.value }

    public init(from decoder: any Decoder) throws {
        box = Box(try decoder.singleValueContainer().decode(Value.self))
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(box.value)
    }
}
