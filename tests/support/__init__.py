"""Helpers shared by the test suite: free ports, real servers started and stopped by tests."""
