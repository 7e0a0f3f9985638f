// QMP client.
