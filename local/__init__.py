"""The pipeline on one machine: moto server, the Personalize Events emulator, and a local event-source runner
driving the functions exactly as the synthesized CDK template wires them (see docs/demo.md)."""
