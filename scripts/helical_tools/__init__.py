"""Host-side tools of the platform: code generation, the trigger, benchmarks, start-up diagnostics, backups."""
