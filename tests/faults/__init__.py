"""Fault injection: processes killed with SIGKILL at random moments and at chosen crash points, full and
read-only disks.  A package so the test modules can share :mod:`.harness`."""
