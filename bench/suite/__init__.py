"""bench/suite"""
