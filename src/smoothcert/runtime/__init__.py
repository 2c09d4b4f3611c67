"""Runtime helpers: seeded random streams and devices (:mod:`.seeding`), torchrun process groups
(:mod:`.distributed`), file locks (:mod:`.locking`) and model acceleration (:mod:`.speed`)."""
