"""facesr.restore"""
