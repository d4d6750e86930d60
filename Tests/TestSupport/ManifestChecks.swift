// Only test builds have the Testing module; a release build of the package compiles this file to nothing.
#if canImport(Testing)
import ManifestYAML
import Testing

/// Runs a manifest reader that should refuse its input; the error it gave (one recorded issue if it gave none).
public func manifestError(_ parse: () throws(ManifestError) -> Any,
                          sourceLocation: SourceLocation = #_sourceLocation) -> ManifestError {
    do {
        let parsed = try parse()
        Issue.record("expected an error, got \(parsed)", sourceLocation: sourceLocation)
        return ManifestError(file: "", line: 0, column: 0, problem: "")
    } catch {
        return error
    }
}

/// Expects the reader to refuse its input at `line`:`column` of `file` with a problem containing every fragment.
public func expectManifestError(_ parse: () throws(ManifestError) -> Any, file: String = "test.yaml", at line: Int, _ column: Int,
                                _ fragments: [String], sourceLocation: SourceLocation = #_sourceLocation) {
    let error = manifestError(parse, sourceLocation: sourceLocation)
    #expect(error.file == file, sourceLocation: sourceLocation)
    #expect(error.line == line, "\(error)", sourceLocation: sourceLocation)
    #expect(error.column == column, "\(error)", sourceLocation: sourceLocation)
    for fragment in fragments {
        #expect(error.problem.contains(fragment), "\(error)", sourceLocation: sourceLocation)
    }
}
#endif
