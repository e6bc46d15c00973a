"""facesr.losses"""
