"""facesr.train"""
