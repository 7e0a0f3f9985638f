import ArgumentParser
import Manifest

extension QemuCtlCommand {
    /// `qemuctl schema`: prints the manifest JSON Schema (or the Markdown field reference).
    struct Schema: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the JSON Schema (draft 2020-12) of qemuctl manifests.",
            discussion: """
                The same text is committed as schemas/qemuctl-v1.schema.json. Editors with the \
                YAML language server pick it up from a first line like
                  # yaml-language-server: $schema=../schemas/qemuctl-v1.schema.json
                Each field has a description, its default, its allowed values and an \
                x-qemuctl-change annotation (metadata, live or restart).

                EXAMPLES:
                  qemuctl schema > qemuctl-v1.schema.json
                """
        )

        @OptionGroup var verbosity: VerbosityOption

        @Flag(help: "Print the Markdown field reference instead.")
        var markdown = false

        func run() throws {
            print(markdown ? ManifestSchema.markdownReference() : ManifestSchema.jsonSchema(), terminator: "")
        }
    }
}
