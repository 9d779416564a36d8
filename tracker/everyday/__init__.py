"""everyday"""
