"""The reference partner consumer: how a partner EHR reads the IOP platform's partner topics.

It uses only what a partner has: the generated protobuf code (gen/python, package iop.events.v1),
the contract in docs/asyncapi.yaml and docs/partner-contracts.md, and kafka-python.
It never imports the platform's own code (services.*).
"""
