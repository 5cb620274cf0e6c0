-- Argo CD health check for redblack.io/v1alpha1 CanaryAnalysis.
-- Lua 5.1 (Argo CD runs it in gopher-lua with the object in the global `obj`).
-- The mapping, and why, is in docs/gitops.md; tests/gitops.rs runs this file
-- under a real Lua 5.1 on analyses recorded from real runs.
local hs = {}

local function text(value, fallback)
  if value ~= nil and value ~= "" then
    return value
  end
  return fallback
end

local status = obj.status
if status == nil or status.phase == nil then
  hs.status = "Progressing"
  hs.message = "waiting for the analysis controller to report a status"
  return hs
end

local generation = obj.metadata.generation
if generation ~= nil and status.observedGeneration ~= generation then
  hs.status = "Progressing"
  hs.message = "waiting for the controller to observe generation " .. tostring(generation)
  return hs
end

local phase = status.phase
local message = text(status.message, "phase " .. phase)

if phase == "Pending" or phase == "Running" then
  hs.status = "Progressing"
  if status.intervalProgress ~= nil then
    message = "intervals " .. status.intervalProgress .. ": " .. message
  end
elseif phase == "Passed" then
  hs.status = "Healthy"
elseif phase == "Failed" or phase == "Error" then
  hs.status = "Degraded"
elseif phase == "Marginal" or phase == "Inconclusive" then
  -- Neither pass nor fail: the Rollout holds its canary for a person
  -- (promote, retry or abort), unless its policy says otherwise.
  hs.status = "Suspended"
else
  hs.status = "Unknown"
  message = "unrecognised phase " .. tostring(phase)
end
hs.message = message
return hs
