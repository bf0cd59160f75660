"""The audit log (decision 8): chain format, signed checkpoints, verification, export, replay."""
