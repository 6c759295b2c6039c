"""metrics/core"""
