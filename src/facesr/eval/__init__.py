"""facesr.eval"""
