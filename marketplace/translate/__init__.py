"""Translation between the event contracts (schemas/) and the pure decision cores
(marketplace/core/), one module per domain, shared by the consumers, the API and the audit
replay."""
