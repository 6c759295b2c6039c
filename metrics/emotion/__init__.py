"""metrics/emotion"""
