"""metrics/motion"""
