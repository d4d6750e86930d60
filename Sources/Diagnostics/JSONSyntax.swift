/// Where JSON text stops being JSON (RFC 8259), in words a user can act on: Foundation's
/// decoder only says "The given data was not valid JSON". Used after a decode failed, to
/// locate the problem; it checks syntax only, iteratively (any nesting depth is fine).
public enum JSONSyntax {
    public struct Problem: Equatable, Sendable, CustomStringConvertible {
        public var line: Int
        public var column: Int
        public var message: String
        public var description: String { "line \(line), column \(column): \(message)" }
        public init(line: Int, column: Int, message: String) {
            self.line = line
            self.column = column
            self.message = message
        }
    }

    /// The first syntax problem of `bytes`, or nil when they are one valid JSON value.
    public static func firstProblem(in bytes: some Collection<UInt8>) -> Problem? {
        let b = Array(bytes)
        var i = 0
        func problem(_ message: String) -> Problem {
            var line = 1, column = 1
            for c in b[..<min(i, b.count)] {
                if c == 0x0A { line += 1; column = 1 } else if c & 0xC0 != 0x80 { column += 1 }
            }
            return Problem(line: line, column: column, message: message)
        }
        func found() -> String {
            guard i < b.count else { return "the end of the text" }
            let c = b[i]
            return c >= 0x20 && c < 0x7F ? "'\(Character(Unicode.Scalar(c)))'" : "byte 0x\(String(c, radix: 16))"
        }
        func skipSpace() { while i < b.count, [0x20, 0x09, 0x0A, 0x0D].contains(b[i]) { i += 1 } }
        func literal(_ word: String) -> Bool {
            let w = Array(word.utf8)
            guard b.count - i >= w.count, Array(b[i..<i + w.count]) == w else { return false }
            i += w.count
            return true
        }
        func string() -> Problem? {
            i += 1 // the opening quote
            while i < b.count {
                switch b[i] {
                case 0x22: i += 1; return nil
                case 0x5C:
                    i += 1
                    guard i < b.count else { return problem("unterminated string") }
                    if b[i] == 0x75 {
                        for k in 1...4 {
                            guard i + k < b.count, isHex(b[i + k]) else { i += k; return problem("\\u needs four hex digits") }
                        }
                        i += 5
                    } else if [0x22, 0x5C, 0x2F, 0x62, 0x66, 0x6E, 0x72, 0x74].contains(b[i]) {
                        i += 1
                    } else {
                        return problem("invalid escape \\\(Character(Unicode.Scalar(b[i])))")
                    }
                case 0..<0x20: return problem("control character in a string (write it as an escape)")
                default: i += 1
                }
            }
            return problem("unterminated string")
        }
        func number() -> Problem? {
            if b[i] == 0x2D { i += 1 }
            guard i < b.count, isDigit(b[i]) else { return problem("expected a digit, found \(found())") }
            if b[i] == 0x30 { i += 1 } else { while i < b.count, isDigit(b[i]) { i += 1 } }
            if i < b.count, b[i] == 0x2E {
                i += 1
                guard i < b.count, isDigit(b[i]) else { return problem("expected a digit after '.', found \(found())") }
                while i < b.count, isDigit(b[i]) { i += 1 }
            }
            if i < b.count, b[i] == 0x65 || b[i] == 0x45 {
                i += 1
                if i < b.count, b[i] == 0x2B || b[i] == 0x2D { i += 1 }
                guard i < b.count, isDigit(b[i]) else { return problem("expected a digit in the exponent, found \(found())") }
                while i < b.count, isDigit(b[i]) { i += 1 }
            }
            return nil
        }
        /// A member's key and its colon.
        func key() -> Problem? {
            guard i < b.count, b[i] == 0x22 else { return problem("expected a key in quotes, found \(found())") }
            if let p = string() { return p }
            skipSpace()
            guard i < b.count, b[i] == 0x3A else { return problem("expected ':' after the key, found \(found())") }
            i += 1
            return nil
        }
        // The open containers: true for an object.
        var stack: [Bool] = []
        var expectValue = true
        skipSpace()
        while true {
            if expectValue {
                guard i < b.count else { return problem("expected a value, found the end of the text") }
                switch b[i] {
                case 0x7B, 0x5B:
                    let object = b[i] == 0x7B
                    i += 1
                    skipSpace()
                    if i < b.count, b[i] == (object ? 0x7D : 0x5D) {
                        i += 1
                        expectValue = false
                    } else {
                        stack.append(object)
                        if object, let p = key() { return p }
                        skipSpace()
                        continue
                    }
                case 0x22: if let p = string() { return p }
                case 0x2D, 0x30...0x39: if let p = number() { return p }
                default:
                    guard literal("true") || literal("false") || literal("null") else { return problem("expected a value, found \(found())") }
                }
                expectValue = false
            }
            skipSpace()
            guard let object = stack.last else {
                return i < b.count ? problem("unexpected \(found()) after the value") : nil
            }
            guard i < b.count else { return problem("expected ',' or '\(object ? "}" : "]")', found the end of the text") }
            if b[i] == 0x2C {
                i += 1
                skipSpace()
                if object, let p = key() { return p }
                skipSpace()
                expectValue = true
            } else if b[i] == (object ? 0x7D : 0x5D) {
                i += 1
                stack.removeLast()
            } else {
                return problem("expected ',' or '\(object ? "}" : "]")', found \(found())")
            }
        }
    }

    private static func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }
    private static func isHex(_ c: UInt8) -> Bool { isDigit(c) || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46) }
}

/// Text files read strictly: invalid UTF-8 is refused with its place, never replaced silently
/// (the config loader refuses it; policies and services now do the same).
public enum UTF8Text {
    /// The text, or why not: "FILE:LINE:COLUMN: not UTF-8 (byte 0xff); save the file as UTF-8".
    public static func decode(_ bytes: some Collection<UInt8>, file: String) -> Result<String, UTF8Error> {
        let b = Array(bytes)
        if let text = String(validating: b, as: UTF8.self) { return .success(text) }
        // Find the first byte that does not start or continue a valid sequence.
        var i = 0, line = 1, column = 1
        while i < b.count {
            let c = b[i]
            let length = c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0
            var ok = length > 0 && i + length <= b.count
            if ok && length > 1 { ok = String(validating: b[i..<i + length], as: UTF8.self) != nil }
            guard ok else {
                return .failure(UTF8Error(description: "\(file):\(line):\(column): not UTF-8 (byte 0x\(String(c, radix: 16))); save the file as UTF-8"))
            }
            if c == 0x0A { line += 1; column = 1 } else { column += 1 }
            i += length
        }
        return .failure(UTF8Error(description: "\(file): not UTF-8; save the file as UTF-8"))
    }

    public struct UTF8Error: Error, CustomStringConvertible, Sendable {
        public var description: String
    }
}
