"""Monitoring: the thresholds file turned into alert rules, a pure engine that turns metric
samples into firing/resolved alerts, and the channels that deliver them."""
