"""The exchange's event contracts (decision 5). See schemas/README.md for the evolution rules."""
