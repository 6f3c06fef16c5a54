"""The outbound-address policy shared by every fetch the server makes on someone's behalf.

Not a Django app: standard library only, it imports nothing from the project, so that any app
may use it (docs/architecture.md, Which app may import which).
"""
