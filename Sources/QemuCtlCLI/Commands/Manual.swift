import ArgumentParser
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

extension QemuCtlCommand {
    /// `qemuctl __man`: the manual page (roff), rendered from the command configuration.
    ///
    /// `make man` prefers swift-argument-parser's generate-manual plugin and falls
    /// back to this command when the plugin cannot run; the tests render the page
    /// with this command (running the plugin needs the build directory's lock).
    struct Manual: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "__man",
            abstract: "Print the manual page (roff) of qemuctl.",
            shouldDisplay: false)

        @Option(help: "The date printed in the page footer.")
        var date = "2026-11-26"

        func run() {
            print(Self.render(date: date), terminator: "")
        }

        /// The page: name, synopsis, a description, then each command's own help.
        static func render(date: String) -> String {
            let root = QemuCtlCommand.configuration
            var out = """
                .TH QEMUCTL 1 "\(date)" "qemuctl \(root.version)" "User Commands"
                .SH NAME
                qemuctl \\- \(escape(root.abstract))
                .SH SYNOPSIS
                .B qemuctl
                .I command
                [\\fIoptions\\fR] [\\fIarguments\\fR]
                .SH DESCRIPTION
                qemuctl manages QEMU virtual machines the way kubectl apply manages a cluster: \
                each VM is a YAML manifest, and \\fBqemuctl apply\\fR makes the host match it, \
                reading the actual state of every VM from QEMU over QMP. The operator commands \
                (start, stop, pause, resume, reset, qmp, hmp, events) act on one VM at once.
                .PP
                Every command takes \\fB\\-\\-state\\-dir\\fR \\fIDIR\\fR (env QEMUCTL_STATE_DIR). \
                Errors are printed on standard error as \\fBqemuctl: error:\\fR followed by a \
                \\fBhint:\\fR line where there is a next step. Colour is used only on a terminal \
                and never with NO_COLOR.
                .SH COMMANDS

                """
            for sub in root.subcommands where sub.configuration.shouldDisplay {
                let name = sub._commandName
                out += ".SS \(escape(name))\n"
                out += escape(sub.configuration.abstract) + "\n"
                out += ".PP\n.nf\n"
                let help = QemuCtlCommand.helpMessage(for: sub, columns: 78)
                out += help.split(separator: "\n", omittingEmptySubsequences: false).map { escape(String($0)) }.joined(separator: "\n")
                out += "\n.fi\n"
            }
            out += """
                .SH FILES
                .TP
                .I STATE/NAME.sock
                The VM's QMP control socket; commands connect, work and close.
                .TP
                .I STATE/NAME/events.sock
                The follower monitor that \\fBqemuctl events\\fR holds.
                .TP
                .I STATE/NAME/record.json, journal.log, serial.log
                The launch record, the journal of changes, the serial log.
                .SH SEE ALSO
                .BR qemu-system-x86_64 (1)

                """
            return out
        }

        /// Text safe in roff: backslashes escaped, other than ASCII as `\\[uXXXX]`, a leading dot or quote guarded.
        static func escape(_ s: String) -> String {
            var t = ""
            for u in s.unicodeScalars {
                if u == "\\" { t += "\\e" }
                else if u.isASCII { t.unicodeScalars.append(u) }
                else {
                    let hex = String(u.value, radix: 16, uppercase: true)
                    t += "\\[u" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex + "]"
                }
            }
            if t.hasPrefix(".") || t.hasPrefix("'") { t = "\\&" + t }
            return t
        }
    }
}
