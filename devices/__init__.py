"""Real drivers: serial RFID readers, PC/SC badges and GPIO points.

Each driver takes its hardware from one seam passed in (a serial URL, a PC/SC reader
name, a gpiozero pin factory), so a simulator stands in with no flag inside the driver.
"""
