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
                .SH EXIT STATUS
                \\fBapply\\fR: 0 done, 1 some change failed, 2 nothing tried (invalid manifests, usage, \
                the state directory's lock busy), 3 done but a restart is pending. \\fBdiff\\fR: 0 no \
                differences, 1 differences, 2 error. \\fBplan\\fR: 0, or with \\fB\\-\\-detailed\\-exitcode\\fR \
                0 no changes, 2 changes, 1 error. \\fBvalidate\\fR: 0 valid, 1 invalid, 2 usage or an \
                unreadable path. \\fBstart\\fR, \\fBstop\\fR, \\fBpause\\fR, \\fBresume\\fR, \\fBreset\\fR, \
                \\fBqmp\\fR, \\fBhmp\\fR: 0 done, 1 QEMU refused, 2 nothing tried, 3 CommandNotFound, \
                4 DeviceNotFound, 5 DeviceNotActive, 6 KVMMissingCap, 7 no answer before the \
                deadline (monitor busy, or QEMU stopped or hung), 8 no such VM or not running. \
                \\fBconsole\\fR: 0 detached, 1 error, 3 the console closed, 128+N on signal N. \
                Usage errors exit 2 (\\fBplan\\fR: 1).
                .SH ENVIRONMENT
                .TP
                .B QEMUCTL_STATE_DIR
                The state directory when \\fB\\-\\-state\\-dir\\fR is not given.
                .TP
                .B NO_COLOR
                When set, no colour, even on a terminal.
                .TP
                .B PATH
                Searched for \\fBqemu\\-system\\-\\fIARCH\\fR and \\fBqemu\\-img\\fR unless a manifest \
                pins \\fBspec.emulator\\fR.
                .TP
                .B HOME
                The default state directory of a user other than root is \\fI~/.cache/qemuctl\\fR.
                .SH FILES
                .TP
                .I /var/run/qemu
                The default state directory as root (\\fI~/.cache/qemuctl\\fR otherwise), 0700.
                .TP
                .I STATE/.apply.lock
                Serialises apply, delete, start, stop, pause, resume and reset (a lock that dies with its holder).
                .TP
                .I STATE/NAME.sock
                The VM's QMP control socket; commands connect, work and close.
                .TP
                .I STATE/NAME/events.sock
                The follower monitor that \\fBqemuctl events\\fR holds.
                .TP
                .I STATE/NAME/console.sock
                The serial console that \\fBqemuctl console\\fR attaches to.
                .TP
                .I STATE/NAME/record.json, journal.log, qemu.pid, qemu.log, serial.log
                The launch record, the journal of changes, QEMU's pid, QEMU's own messages, the serial log.
                .SH EXAMPLES
                .nf
                qemuctl validate \\-f vms/
                qemuctl diff \\-f vms/                 # exit 1 when the host drifted
                qemuctl plan \\-f vms/ \\-\\-out plan.json
                qemuctl apply plan.json
                qemuctl apply \\-f vms/ \\-\\-prune \\-\\-restart=if\\-needed
                qemuctl get \\-o yaml
                qemuctl console web\\-1                # Ctrl\\-] detaches
                qemuctl stop web\\-1 \\-\\-stop\\-timeout 60
                qemuctl qmp web\\-1 query\\-status
                qemuctl events \\-o json
                .fi
                .SH SEE ALSO
                .BR qemu-system-x86_64 (1),
                .BR qemu-img (1)

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
