"""metrics/sync"""
