print("scale: todo")
