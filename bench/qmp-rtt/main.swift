print("qmp-rtt: not yet")
