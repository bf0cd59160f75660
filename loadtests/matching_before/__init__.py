"""The matching core as it was before the speed work of issue #18 (target 2), frozen: a copy of
marketplace/core/{matching,book,grid,economics,eligibility,specification,periods,geo,ids}.py at
commit a214fa8 with its imports pointed here. Used only by the benchmark's A/B
(loadtests/bench_matching.py) and the equivalence test (tests/unit/test_matching_equivalence.py);
never by the exchange. Do not edit: it is the reference the new core must agree with."""
