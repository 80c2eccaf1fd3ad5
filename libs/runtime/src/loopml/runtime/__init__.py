"""Shared runtime of the loopml services: errors, settings, stores and the gRPC server bootstrap.

Submodules are imported explicitly (`loopml.runtime.objectstore`, `loopml.runtime.db`,
`loopml.runtime.grpcserver`) so that a process only pays for what it uses.
"""
