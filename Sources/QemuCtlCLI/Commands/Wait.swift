import ArgumentParser
import QMP
import QemuCtl
import Reconcile

extension QemuCtlCommand {
    /// `qemuctl wait NAME… --for CONDITION`: block until VMs reach a state or pass a readiness probe.
    struct Wait: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Wait until VMs are running, paused or stopped, their guest agent answers, or they pass a readiness probe.",
            discussion: """
                Conditions: running and paused are QEMU's run state (QMP query-status); stopped means \
                no QEMU runs for the VM; agent means the guest agent answers guest-ping (the VM needs \
                guestAgent: true and qemu-guest-agent in the guest); ready means the VM's readiness probe \
                passes: the one its manifest declares in spec.readiness (guestAgent, tcpPort or \
                serialMatch, as last applied), or the one --probe gives, which overrides it: agent, \
                tcp:PORT (a guest TCP port reached through the VM's user-network hostfwd sends its \
                first bytes, as an ssh server does) or serial:REGEX (a line of the VM's serial log \
                matches; Swift Regex syntax). A VM that does not run \
                yet is waited for. With several names, all must reach the condition within one \
                --timeout.

                Exit status: 0 every VM reached the condition; 1 the condition cannot hold for a VM \
                (no guest agent channel, no host forward for the port, no serial log, no probe \
                declared or given for --for ready); 2 usage; \
                4 the timeout passed first; 8 no such VM in the state directory.

                EXAMPLES:
                  qemuctl wait web-1 --for agent --timeout 5m
                  qemuctl wait web-1 web-2 --for ready
                  qemuctl wait web-1 --for ready --probe tcp:22
                  qemuctl wait web-1 --for stopped --timeout 60
                """)

        /// Exit statuses of `wait`.
        enum Exit {
            static let notApplicable: Int32 = 1
            static let timedOut: Int32 = 4
        }

        /// What to wait for.
        enum Condition: String, ExpressibleByArgument, CaseIterable {
            case running, paused, stopped, ready, agent
        }

        @OptionGroup var state: StateDirOption

        @Argument(help: "VM names.", completion: .vmNames)
        var names: [String]

        @Option(name: .customLong("for"), help: "running, paused, stopped, ready or agent.")
        var condition: Condition

        @Option(help: "The readiness probe for --for ready, overriding the VM's spec.readiness: agent, tcp:PORT or serial:REGEX.")
        var probe: String?

        @Option(help: "How long to wait for all the VMs: seconds, or a number with ms, s, m or h (default 5m).")
        var timeout: String = "5m"

        func validate() throws {
            guard Self.duration(timeout) != nil else {
                throw ValidationError("--timeout '\(timeout)' is not a duration (seconds, or a number with ms, s, m or h)")
            }
            if condition == .ready {
                if let probe {
                    do { _ = try ReadinessProbe(parsing: probe) } catch { throw ValidationError(error.message) }
                }
            } else if probe != nil {
                throw ValidationError("--probe applies to --for ready only")
            }
            for name in names where name.isEmpty || name.contains("/") || name.hasPrefix(".") {
                throw ValidationError("'\(name)' is not a VM name")
            }
        }

        /// Parses `90`, `90s`, `500ms`, `5m`, `1h`.
        static func duration(_ text: String) -> Duration? {
            let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
            for (suffix, scale) in units where text.hasSuffix(suffix) {
                guard let v = Double(text.dropLast(suffix.count)), v >= 0, v.isFinite else { return nil }
                return .milliseconds(Int64(v * scale * 1000))
            }
            guard let v = Double(text), v >= 0, v.isFinite else { return nil }
            return .milliseconds(Int64(v * 1000))
        }

        func run() async throws {
            let store = state.store
            let total = Self.duration(timeout)!
            let deadline = ContinuousClock.now + total
            let probe = try probe.map { try ReadinessProbe(parsing: $0) }
            var first: Int32? = nil
            for name in names {
                let layout = store.layout(name)
                guard Posix.fileExists(store.recordPath(name)) || Posix.fileExists(layout.socketPath)
                        || Posix.fileExists(layout.runtimeDirectory) else {
                    Terminal.fail("no VM named \(name) in \(store.directory)",
                                  hint: "`qemuctl get` lists the VMs there; --state-dir (or QEMUCTL_STATE_DIR) selects another state directory")
                    first = first ?? OperatorExit.notRunning
                    continue
                }
                let started = ContinuousClock.now
                Verbosity.say("\(name): waiting for \(condition.rawValue)" + (probe.map { " (probe \($0))" } ?? "")
                              + ", checking about every half second until \(timeout) have passed")
                do {
                    try await waitFor(name, store: store, layout: layout, probe: probe, deadline: deadline)
                    let took = ContinuousClock.now - started
                    print("\(name): \(Terminal.paint(condition.rawValue, .green)) (after \(Self.seconds(took)))")
                } catch let error as ReadinessError {
                    let status = error.code == .timedOut ? Exit.timedOut : Exit.notApplicable
                    Terminal.fail("\(name): \(error.message)",
                                  hint: status == Exit.timedOut ? "a longer --timeout, or `qemuctl console \(name)` to see the guest" : nil)
                    first = first ?? status
                }
            }
            if let first { throw ExitCode(first) }
        }

        /// Waits for this command's condition on one VM until `deadline`.
        private func waitFor(_ name: String, store: StateStore, layout: RuntimeLayout, probe: ReadinessProbe?,
                             deadline: ContinuousClock.Instant) async throws {
            var last = "not checked yet"
            while true {
                let pid = store.runningPID(name)
                switch condition {
                case .stopped:
                    if pid == nil { return }
                    last = "QEMU (pid \(pid!)) still runs"
                case .running, .paused:
                    if pid != nil {
                        do {
                            let status = try await QMPClient.withConnection(to: layout.socketPath, timeout: .seconds(5)) { qmp in
                                try await qmp.queryStatus(timeout: .seconds(5))
                            }
                            if condition == .running ? status.running : (!status.running && status.status != "shutdown") { return }
                            last = "QEMU reports \(status.status)"
                        } catch {
                            last = "\(error)"
                        }
                    } else {
                        last = "no QEMU runs for \(name)"
                    }
                case .agent, .ready:
                    let probe: ReadinessProbe
                    if condition == .agent {
                        probe = .guestAgent
                    } else if let given = self.probe.flatMap({ try? ReadinessProbe(parsing: $0) }) ?? VMReadiness.declaredProbe(name, store: store) {
                        probe = given
                    } else {
                        throw ReadinessError(code: .notApplicable,
                                             message: "\(name) declares no readiness probe (spec.readiness: guestAgent, tcpPort or serialMatch); "
                                                 + "add one to its manifest and apply, or pass --probe agent|tcp:PORT|serial:REGEX")
                    }
                    if let pid {
                        let target = ReadinessTarget(layout: layout, commandLine: Posix.commandLine(of: pid) ?? [])
                        if probe == .guestAgent && !Posix.fileExists(layout.guestAgentSocket) {
                            throw ReadinessError(code: .notApplicable,
                                                 message: "the VM has no guest agent channel (\(layout.guestAgentSocket) does not exist; set guestAgent: true)")
                        }
                        let left = deadline - ContinuousClock.now
                        // One round of the probe, bounded by what is left; a VM that stops meanwhile is looked at again.
                        do {
                            try await ReadinessCheck.wait(for: probe, target: target, timeout: min(left, .seconds(30)))
                            return
                        } catch {
                            guard error.code == .timedOut else { throw error }
                            last = error.message
                        }
                    } else {
                        last = "no QEMU runs for \(name)"
                    }
                }
                if ContinuousClock.now >= deadline {
                    throw ReadinessError(code: .timedOut, message: "not \(condition.rawValue) after \(timeout): \(last)")
                }
                try? await Task.sleep(for: min(.milliseconds(500), max(.zero, deadline - ContinuousClock.now)))
            }
        }

        /// "12.3 s".
        static func seconds(_ d: Duration) -> String {
            let ms = d.components.seconds * 1000 + d.components.attoseconds / 1_000_000_000_000_000
            return "\(ms / 1000).\((ms % 1000) / 100) s"
        }
    }
}
