import ArgumentParser
import QemuCtl

extension QemuCtlCommand {
    /// `qemuctl vnc NAME`: connect VNC viewers to a VM without opening QEMU's port.
    struct VNC: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "vnc",
            abstract: "Hand VNC connections to a VM's display without opening a TCP port of QEMU's.",
            discussion: """
                By default qemuctl listens on a unix socket, mode 0600 in the VM's private runtime \
                directory (or --socket PATH, in a directory of yours closed to others), printed on \
                standard error; only this user can connect, and the kernel's SO_PEERCRED is checked \
                for each client. Each client that connects is passed to QEMU as a file descriptor \
                (QMP getfd with SCM_RIGHTS, then add_client), over a short monitor connection per \
                client. With --stdio one connection is handed over and its other end is this \
                process's standard input and output, e.g. as an ssh ProxyCommand. --listen \
                127.0.0.1:PORT listens on TCP instead, which every local user can reach: it is \
                refused for a display without a password unless --insecure-listen. \
                Authentication stays QEMU's (skipauth is off).

                The VM needs a VNC display: spec.display.vnc (listen: none is enough).

                EXAMPLES:
                  qemuctl vnc web-1 --listen 127.0.0.1:5901 & vncviewer 127.0.0.1:5901
                  qemuctl vnc web-1 --stdio                      # for ssh -o ProxyCommand
                """
        )

        @OptionGroup var global: GlobalOptions
        @OptionGroup var handoff: HandoffOptions

        func run() async throws { try await handoff.run(.vnc, global: global) }
    }
}
