"""metrics/visual"""
