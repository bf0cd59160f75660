"""The market simulator: a seeded, reproducible market of SMEs and logistics firms in the regions
this exchange serves, driving the real API (see market.py for the model, driver.py for the run)."""
