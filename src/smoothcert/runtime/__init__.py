"""Runtime helpers: seeded random streams and devices ([`seeding`][.seeding]), torchrun process groups
([`distributed`][.distributed]), file locks ([`locking`][.locking]) and model acceleration ([`speed`][.speed])."""
