import ArgumentParser
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import QMP
import Reconcile

extension QemuCtlCommand {
    /// `qemuctl qmp NAME COMMAND [JSON-ARGS]`: one raw QMP command.
    struct QMPRaw: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "qmp",
            abstract: "Run one raw QMP command on a VM and print QEMU's answer as JSON.",
            discussion: """
                Connects to STATE/NAME.sock, runs COMMAND with JSON-ARGS (a JSON object) as its \
                arguments, prints the `return` value on standard output and closes the \
                connection. When QEMU answers with an error, standard output gets \
                {"error": {"class": …, "desc": …}} and the exit status says which class. \
                No lock is taken: the command is yours to choose.

                Example: qemuctl qmp web-1 query-status; qemuctl qmp web-1 set_link '{"name": "net-net0", "up": false}'

                \(OperatorExit.help)

                EXAMPLES:
                  qemuctl qmp web-1 query-status
                  qemuctl qmp web-1 block_set_io_throttle '{"id": "root", "bps": 0, …}'
                """)

        @OptionGroup var global: GlobalOptions

        @Argument(help: "The VM name.", completion: .vmNames, transform: VMNameArgument.parse)
        var name: String

        @Argument(help: "The QMP command, e.g. query-status.")
        var command: String

        @Argument(help: "The command's arguments: a JSON object.")
        var jsonArgs: String?

        @Flag(name: .shortAndLong, help: "Print the JSON on one line.")
        var compact = false

        func run() async throws {
            var arguments: JSONValue? = nil
            if let jsonArgs {
                let parsed: JSONValue
                do {
                    parsed = try JSONValue(parsing: jsonArgs)
                } catch {
                    Terminal.fail("JSON-ARGS is not valid JSON: \(error)", hint: #"give an object, e.g. '{"device": "cd0"}' (quoted for the shell)"#)
                    throw ExitCode(OperatorExit.usage)
                }
                guard case .object = parsed else {
                    Terminal.fail("JSON-ARGS must be a JSON object (QMP's \"arguments\"), got \(Self.kind(parsed)): \(jsonArgs)",
                                  hint: #"wrap the values in an object with the argument names, e.g. '{"device": "cd0"}'"#)
                    throw ExitCode(OperatorExit.usage)
                }
                arguments = parsed
            }
            let access = MonitorAccess(store: global.store, deadline: global.deadline)
            let render = { (v: JSONValue) in compact ? v.description : JSONText.pretty(v) }
            do {
                let reply = try await access.with(name) { qmp throws(QMPError) in
                    try await qmp.execute(command, arguments: arguments, timeout: global.deadline)
                }
                print(render(reply))
            } catch {
                if let q = error.qmp, q.code == .commandFailed {
                    print(render(["error": ["class": .string(q.errorClass ?? "GenericError"), "desc": .string(q.message)]]))
                }
                error.report()
                throw ExitCode(error.status)
            }
        }

        static func kind(_ v: JSONValue) -> String {
            switch v {
            case .array: "an array"
            case .string: "a string"
            case .int, .double: "a number"
            case .bool: "a boolean"
            case .null: "null"
            case .object: "an object"
            }
        }
    }

    /// `qemuctl hmp NAME 'info …'`: one human monitor command.
    struct HMP: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "hmp",
            abstract: "Run one human monitor (HMP) command on a VM, e.g. 'info status', and print its text.",
            discussion: """
                Sent over QMP (human-monitor-command) on a short connection to STATE/NAME.sock. \
                The words are joined with spaces, so quoting is optional. -o json prints \
                {"output": "…"}. HMP reports its own errors as text; an unknown HMP command \
                exits 3, like QMP's CommandNotFound.

                \(OperatorExit.help)

                EXAMPLES:
                  qemuctl hmp web-1 'info block'
                  qemuctl hmp web-1 'info status' -o json
                """)

        /// Output formats.
        enum Output: String, ExpressibleByArgument, CaseIterable {
            case text, json
        }

        @OptionGroup var global: GlobalOptions

        @Argument(help: "The VM name.", completion: .vmNames, transform: VMNameArgument.parse)
        var name: String

        @Argument(parsing: .remaining, help: "The HMP command line, e.g. info status.")
        var commandLine: [String]

        @Option(name: .shortAndLong, help: "text or json.")
        var output: Output = .text

        func validate() throws {
            if commandLine.isEmpty { throw ValidationError("give an HMP command, e.g. qemuctl hmp \(name) info status") }
        }

        func run() async throws {
            let line = commandLine.joined(separator: " ")
            let access = MonitorAccess(store: global.store, deadline: global.deadline)
            let text: String
            do {
                text = try await access.with(name) { qmp throws(QMPError) in
                    try await qmp.humanMonitorCommand(line, timeout: global.deadline)
                }
            } catch {
                error.report()
                throw ExitCode(error.status)
            }
            let clean = text.replacing("\r\n", with: "\n")
            switch output {
            case .json: print(JSONText.pretty(["output": .string(clean)]))
            case .text: print(clean, terminator: clean.isEmpty || clean.hasSuffix("\n") ? "" : "\n")
            }
            if clean.hasPrefix("unknown command:") {
                Terminal.fail("HMP does not know '\(line)'", hint: "`qemuctl hmp \(name) help` lists the HMP commands")
                throw ExitCode(OperatorExit.commandNotFound)
            }
        }
    }
}
